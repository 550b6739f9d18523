"""Relabelling and target labels, as Prometheus's model/relabel and scrape/target.go."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from agent.config import RelabelConfig, ScrapeConfig
from agent.scrape.discovery import (
    DroppedTarget,
    InvalidTarget,
    Target,
    build_target,
    static_groups,
)
from agent.scrape.relabel import compile_regex, hashmod, merge_target_labels, relabel


def step(**kw: Any) -> RelabelConfig:
    return RelabelConfig.model_validate(kw)


# --------------------------------------------------------------------------- actions


def test_replace_expands_braced_groups() -> None:
    """replace writes the expanded replacement into target_label (Prometheus's first example)."""
    cfg = step(source_labels=["a"], regex="f(.*)", target_label="d", replacement="ch${1}-ch${1}")
    assert relabel({"a": "foo", "b": "bar"}, [cfg]) == {"a": "foo", "b": "bar", "d": "choo-choo"}


def test_replace_joins_sources_and_chains_steps() -> None:
    """Source values are joined with the separator and each step sees the previous one's output."""
    steps = [
        step(source_labels=["a", "b"], regex="f(.*);(.*)r", target_label="a",
             replacement="b${1}${2}m"),
        step(source_labels=["c", "a"], regex="(b).*b(.*)ba(.*)", target_label="d",
             replacement="$1$2$2$3"),
    ]  # fmt: skip
    out = relabel({"a": "foo", "b": "bar", "c": "baz"}, steps)
    assert out == {"a": "boobam", "b": "bar", "c": "baz", "d": "boooom"}


def test_replace_without_match_changes_nothing() -> None:
    """No match means no replacement, even with a constant replacement."""
    cfg = step(source_labels=["a"], regex="f", target_label="b", replacement="bar")
    assert relabel({"a": "boo"}, [cfg]) == {"a": "boo"}


def test_replace_with_empty_result_removes_the_label() -> None:
    """A replacement that expands to the empty string deletes the target label."""
    cfg = step(source_labels=["missing"], target_label="a")
    assert relabel({"a": "x", "b": "y"}, [cfg]) == {"b": "y"}


def test_replace_target_label_is_expanded_and_skipped_when_empty() -> None:
    """target_label may use groups; one that expands to nothing writes nothing."""
    valid = step(source_labels=["a"], regex="some-([^-]+)-([^,]+)", target_label="${1}",
                 replacement="${2}")  # fmt: skip
    invalid = step(source_labels=["a"], regex="some-([^-]+)-([^,]+)", target_label="${3}",
                   replacement="${1}")  # fmt: skip
    assert relabel({"a": "some-name-value"}, [valid]) == {"a": "some-name-value", "name": "value"}
    assert relabel({"a": "some-name-0"}, [invalid]) == {"a": "some-name-0"}


def test_go_expand_semantics() -> None:
    """$1x names group '1x' (empty), ${2}x is group 2 then x, $$ a dollar, ${name} a named group."""
    regex = "(?P<word>[a-z]+)-([0-9]+)"
    cases = {"$1x": "", "${2}x": "7x", "$$1": "$1", "${word}": "ab", "$word": "ab", "$": "$"}
    for replacement, expected in cases.items():
        cfg = step(source_labels=["a"], regex=regex, target_label="out", replacement=replacement)
        assert relabel({"a": "ab-7"}, [cfg]).get("out", "") == expected, replacement  # type: ignore[union-attr]


def test_regex_is_anchored_and_dot_matches_newline() -> None:
    """'f|o' does not drop 'foo' (anchored), and '.*' matches across a newline (Prometheus 3)."""
    assert relabel({"a": "foo"}, [step(source_labels=["a"], regex="f|o", action="drop")]) == {
        "a": "foo"
    }
    assert relabel({"a": "x\ny"}, [step(source_labels=["a"], regex="x.*", action="drop")]) is None


def test_keep_and_drop() -> None:
    """keep drops sets whose joined value does not match; drop drops those that do."""
    assert (
        relabel({"a": "foo"}, [step(source_labels=["a"], regex="no-match", action="keep")]) is None
    )
    assert relabel({"a": "foo"}, [step(source_labels=["a"], regex="f.*", action="keep")]) == {
        "a": "foo"
    }
    assert relabel({"a": "foo"}, [step(source_labels=["a"], regex=".*o.*", action="drop")]) is None


def test_keepequal_and_dropequal_compare_with_target_label() -> None:
    """keepequal/dropequal compare the joined source values with target_label's value."""
    labels = {"__tmp_port": "1234", "__port1": "1234", "__port2": "5678"}
    keep1 = step(source_labels=["__tmp_port"], target_label="__port1", action="keepequal")
    keep2 = step(source_labels=["__tmp_port"], target_label="__port2", action="keepequal")
    drop1 = step(source_labels=["__tmp_port"], target_label="__port1", action="dropequal")
    drop2 = step(source_labels=["__tmp_port"], target_label="__port2", action="dropequal")
    assert relabel(labels, [keep1]) == labels
    assert relabel(labels, [keep2]) is None
    assert relabel(labels, [drop1]) is None
    assert relabel(labels, [drop2]) == labels


def test_hashmod_matches_prometheus() -> None:
    """hashmod gives Prometheus's own test values: 'baz' % 1000 = 976, 'foo\\nbar' % 1000 = 734."""
    cfg = step(source_labels=["c"], target_label="d", action="hashmod", modulus=1000)
    assert relabel({"c": "baz"}, [cfg]) == {"c": "baz", "d": "976"}
    assert hashmod("foo\nbar", 1000) == 734
    digest = hashlib.md5(b"baz").digest()
    assert int.from_bytes(digest[8:], "big") % 1000 == 976  # the last 8 bytes, as Prometheus
    assert int.from_bytes(digest[:8], "big") % 1000 != 976


def test_hashmod_sharding_example_from_the_docs() -> None:
    """The documented sharding recipe keeps each address in exactly one of the shards."""
    addresses = [f"10.0.0.{i}:9100" for i in range(40)]
    kept = []
    for shard in range(4):
        steps = [
            step(source_labels=["__address__"], modulus=4, target_label="__tmp_hash",
                 action="hashmod"),
            step(source_labels=["__tmp_hash"], regex=f"^{shard}$", action="keep"),
        ]  # fmt: skip
        kept += [a for a in addresses if relabel({"__address__": a}, steps) is not None]
    assert sorted(kept) == sorted(addresses)


def test_labelmap_copies_matching_names() -> None:
    """labelmap copies each matching label to the expanded name (Prometheus's __meta_ example)."""
    labels = {"a": "foo", "__meta_my_bar": "aaa", "__meta_my_baz": "bbb", "__meta_other": "ccc"}
    out = relabel(labels, [step(regex="__meta_(my.*)", replacement="${1}", action="labelmap")])
    assert out == {**labels, "my_bar": "aaa", "my_baz": "bbb"}


def test_labeldrop_and_labelkeep() -> None:
    """labeldrop removes matching names; labelkeep removes the others."""
    labels = {"a": "foo", "b1": "bar", "b2": "baz"}
    assert relabel(labels, [step(regex="(b.*)", action="labeldrop")]) == {"a": "foo"}
    assert relabel(labels, [step(regex="(b.*)", action="labelkeep")]) == {"b1": "bar", "b2": "baz"}


def test_lowercase_and_uppercase() -> None:
    """lowercase/uppercase write the case-mapped joined value into target_label."""
    steps = [
        step(source_labels=["foo"], target_label="foo_uppercase", action="uppercase"),
        step(source_labels=["foo"], target_label="foo_lowercase", action="lowercase"),
    ]
    out = relabel({"foo": "bAr123Foo"}, steps)
    assert out == {"foo": "bAr123Foo", "foo_lowercase": "bar123foo", "foo_uppercase": "BAR123FOO"}


def test_named_groups_and_regex_compiled_once() -> None:
    """Named groups expand by name, and each distinct regex is compiled once."""
    cfg = step(source_labels=["a"], regex=r"(?P<first>\w+)-\w+", target_label="b",
               replacement="${first}")  # fmt: skip
    compile_regex.cache_clear()
    for _ in range(5):
        assert relabel({"a": "x-y"}, [cfg]) == {"a": "x-y", "b": "x"}
    assert compile_regex.cache_info().misses == 1


def test_merge_target_labels_honor_and_exported_prefix() -> None:
    """Without honor_labels clashing exposed labels move to exported_*, longest chain first."""
    exposed = (("__name__", "m"), ("exported_job", "e"), ("job", "x"))
    target = (("instance", "h:1"), ("job", "api"))
    merged = merge_target_labels(exposed, target, honor=False)
    assert merged == {
        "__name__": "m",
        "job": "api",
        "instance": "h:1",
        "exported_job": "e",
        "exported_exported_job": "x",
    }
    assert merge_target_labels(exposed, target, honor=True)["job"] == "x"


# --------------------------------------------------------------------------- target labels


def job(**kw: Any) -> ScrapeConfig:
    kw.setdefault("job_name", "node")
    return ScrapeConfig.model_validate(kw)


def test_target_defaults() -> None:
    """job, instance and the URL come from the job's settings and the address."""
    t = build_target(job(), "h:9100", (("env", "prod"),), interval=15.0, timeout=10.0)
    assert isinstance(t, Target)
    assert dict(t.labels) == {"env": "prod", "instance": "h:9100", "job": "node"}
    assert t.url == "http://h:9100/metrics"
    assert (t.interval, t.timeout) == (15.0, 10.0)
    assert dict(t.discovered) == {
        "__address__": "h:9100",
        "__metrics_path__": "/metrics",
        "__scheme__": "http",
        "__scrape_interval__": "15s",
        "__scrape_timeout__": "10s",
        "env": "prod",
        "job": "node",
    }


def test_target_params_and_special_labels_from_relabelling() -> None:
    """__scheme__, __metrics_path__, __param_* and __scrape_interval__ set by relabelling win."""
    cfg = job(
        params={"module": ["http_2xx"], "x": ["1", "2"]},
        relabel_configs=[
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"target_label": "__address__", "replacement": "blackbox:9115"},
            {"target_label": "__metrics_path__", "replacement": "/probe"},
            {"target_label": "__scheme__", "replacement": "https"},
            {"target_label": "__scrape_interval__", "replacement": "1m"},
            {"source_labels": ["__param_target"], "target_label": "instance"},
        ],
    )
    t = build_target(cfg, "example.com:443", (), interval=15.0, timeout=10.0)
    assert isinstance(t, Target)
    assert t.url == "https://blackbox:9115/probe?module=http_2xx&target=example.com%3A443&x=1&x=2"
    assert dict(t.labels) == {"instance": "example.com:443", "job": "node"}
    assert t.interval == 60.0


def test_target_meta_labels_dropped_and_hidden_labels_not_public() -> None:
    """__meta_* labels vanish after relabelling and no __ label reaches the target's labels."""
    cfg = job(relabel_configs=[{"source_labels": ["__meta_filepath"], "target_label": "file"}])
    t = build_target(cfg, "h:1", (("__meta_filepath", "/sd/a.json"),), interval=5.0, timeout=5.0)
    assert isinstance(t, Target)
    assert dict(t.labels) == {"file": "/sd/a.json", "instance": "h:1", "job": "node"}
    assert ("__meta_filepath", "/sd/a.json") in t.discovered


def test_target_dropped_by_relabelling() -> None:
    """A target that relabelling drops comes back as DroppedTarget with its discovered labels."""
    cfg = job(
        relabel_configs=[{"source_labels": ["__address__"], "regex": "h:.*", "action": "drop"}]
    )
    t = build_target(cfg, "h:1", (), interval=5.0, timeout=5.0)
    assert isinstance(t, DroppedTarget)
    assert ("__address__", "h:1") in t.discovered


@pytest.mark.parametrize(
    ("relabel_configs", "message"),
    [
        ([{"target_label": "__address__", "replacement": ""}], "no address"),
        ([{"target_label": "__address__", "replacement": "h/x:1"}], "not a valid hostname"),
        ([{"target_label": "__scrape_timeout__", "replacement": "1m"}], "greater than"),
        ([{"target_label": "__scrape_interval__", "replacement": "soon"}], "scrape interval"),
    ],
)
def test_invalid_targets(relabel_configs: list[dict[str, str]], message: str) -> None:
    """Targets without an address, with a bad address or with bad timing are rejected."""
    with pytest.raises(InvalidTarget, match=message):
        build_target(job(relabel_configs=relabel_configs), "h:1", (), interval=5.0, timeout=5.0)


def test_static_groups_carry_their_labels() -> None:
    """static_configs become target groups with their labels."""
    cfg = job(static_configs=[{"targets": ["a:1", "b:2"], "labels": {"env": "x"}}])
    [group] = static_groups(cfg)
    assert group.targets == ("a:1", "b:2")
    assert group.labels == (("env", "x"),)
