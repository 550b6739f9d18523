"""Events: the CloudEvents stream of everything that changed, and its sinks."""
