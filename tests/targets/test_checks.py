"""Response checks: what passes, and what a failure is counted under."""

import pytest

from pusher_farm.targets.checks import Checks, Response, parse_statuses


def test_statuses_read_codes_and_ranges():
    assert parse_statuses("200,204") == {200, 204}
    assert parse_statuses("200-203, 304") == {200, 201, 202, 203, 304}
    for bad in ("abc", "99", "200-100", "600"):
        with pytest.raises(ValueError):
            parse_statuses(bad)


@pytest.mark.parametrize(
    ("checks", "status", "headers", "body", "verdict"),
    [
        (Checks(), 200, (), b"", None),
        (Checks(), 204, (), b"", None),
        (Checks(), 503, (), b"", "HTTP 503"),
        (Checks(statuses=frozenset({204})), 204, (), b"", None),
        (Checks(statuses=frozenset({204})), 200, (), b"", "Check status 200"),
        (Checks(statuses=frozenset({404})), 404, (), b"", None),  # a 404 that is expected passes
        (Checks(body="ok"), 200, (), b"all ok\n", None),
        (Checks(body="ok"), 200, (), b"not good", "Check body"),
        (Checks(headers=[("Content-Type", "text/plain")]), 200, (("content-type", "text/plain"),), b"", None),
        (
            Checks(headers=[("Content-Type", "text/plain")]),
            200,
            (("Content-Type", "text/html"),),
            b"",
            "Check header Content-Type",
        ),
        (Checks(headers=[("X-Id", "1")]), 200, (), b"", "Check header X-Id"),
        (Checks(custom=lambda r: r.body.startswith(b"{")), 200, (), b"{}", None),
        (Checks(custom=lambda r: r.body.startswith(b"{")), 200, (), b"<html>", "Check"),
        (Checks(custom=lambda r: None if r.header("x-a") == "1" else "x-a"), 200, (("X-A", "2"),), b"", "Check x-a"),
        (Checks(custom=lambda r: 1 / 0), 200, (), b"", "Check ZeroDivisionError"),
    ],
)
def test_verdicts(checks, status, headers, body, verdict):
    assert checks.verdict(status, headers, body) == verdict


def test_a_check_asks_only_for_what_it_reads():
    assert Checks().plain and Checks(statuses=frozenset({200})).plain is False
    assert not Checks(statuses=frozenset({200})).needs_body and not Checks(statuses=frozenset({200})).needs_headers
    assert Checks(body="x").needs_body and not Checks(body="x").needs_headers
    assert Checks(headers=[("A", "b")]).needs_headers and not Checks(headers=[("A", "b")]).needs_body
    assert Response(200, (("A", "1"),)).header("a") == "1"
