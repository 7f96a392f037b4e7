"""Reply decoding and error classification (pure)."""

import json

import pytest

from relay import errors
from relay.portal.protocol import Command, batch_params, classify, decode_batch, decode_reply


@pytest.mark.parametrize(
    ("code", "text", "status", "cls"),
    [
        ("QUERY_LIMIT_EXCEEDED", "Too many requests", 503, errors.QueryLimitExceeded),
        ("OPERATION_TIME_LIMIT", "Method is blocked", 429, errors.OperationTimeLimit),
        ("", "Not found", 400, errors.NotFound),
        ("NOT_FOUND", "", 400, errors.NotFound),
        ("OWNER_NOT_FOUND", "", 400, errors.NotFound),
        ("", "Access denied.", 400, errors.AuthError),
        ("NO_AUTH_FOUND", "Wrong authorization data", 401, errors.AuthError),
        ("insufficient_scope", "", 403, errors.AuthError),
        ("INTERNAL_SERVER_ERROR", "", 500, errors.ServerError),
        ("", "", 502, errors.ServerError),
        ("OVERLOAD_LIMIT", "", 503, errors.ServerError),
        ("ERROR_CORE", "Product is not found", 400, errors.ValidationError),
        ("", "Stage 'X' is not found in category 3", 400, errors.ValidationError),
        ("", "Deal not found", 400, errors.NotFound),
        ("", "ID is not defined or invalid", 400, errors.ValidationError),
    ],
)
def test_classify(code: str, text: str, status: int, cls: type) -> None:
    err = classify(code, text, status=status, method="crm.deal.get")
    assert type(err) is cls
    assert err.method == "crm.deal.get"


def test_transient_and_permanent_branches() -> None:
    assert isinstance(classify("QUERY_LIMIT_EXCEEDED", ""), errors.TransientError)
    assert isinstance(classify("", "Not found"), errors.PermanentError)


def test_decode_reply_ok_and_errors() -> None:
    assert decode_reply(200, b'{"result": 5, "time": {}}', method="crm.deal.add")["result"] == 5
    with pytest.raises(errors.NotFound):
        decode_reply(400, b'{"error":"","error_description":"Not found"}', method="crm.deal.get")
    with pytest.raises(errors.OperationTimeLimit) as info:
        decode_reply(429, json.dumps({"error": "OPERATION_TIME_LIMIT", "error_description": "x",
                                      "time": {"operating_reset_at": 1700000000}}), method="crm.deal.list")
    assert info.value.reset_at == 1700000000.0
    with pytest.raises(errors.ServerError):
        decode_reply(502, b"<html>bad gateway</html>", method="batch")
    with pytest.raises(errors.ServerError):
        decode_reply(200, b"not json", method="batch")


def test_batch_params_and_limit() -> None:
    params = batch_params({"d": Command("crm.deal.get", {"id": 7})}, halt=False)
    assert params == {"halt": 0, "cmd": {"d": "crm.deal.get?id=7"}}
    with pytest.raises(ValueError):
        batch_params({str(i): Command("x") for i in range(51)})


def test_decode_batch_with_empty_sections_and_errors() -> None:
    cmds = {"a": Command("crm.deal.add"), "p": Command("crm.deal.productrows.set")}
    reply = decode_batch({"result": {"result": {"a": 10}, "result_error": {"p": {
        "error": "ERROR_CORE", "error_description": "Product is not found"}}, "result_total": []}}, cmds)
    assert reply.get("a") == 10
    with pytest.raises(errors.ValidationError) as info:
        reply.get("p")
    assert info.value.command == "p" and info.value.method == "crm.deal.productrows.set"
    empty = decode_batch({"result": {"result": [], "result_error": []}}, cmds)
    with pytest.raises(errors.ValidationError):
        empty.get("a")  # never ran
