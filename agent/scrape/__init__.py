"""Scraping Prometheus-format metrics: parser, relabelling, target loops, discovery."""
