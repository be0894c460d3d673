"""Error lines, trust-policy reading and dry-run argument display (no AWS needed)."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from pipeline.deploy.clients import show
from pipeline.deploy.errors import is_not_found, one_line
from pipeline.deploy.roles import SAGEMAKER, SCHEDULER, missing_trust, trusted_services


def client_error(code: str, message: str, operation: str = "CreatePipeline") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class TestValidErrorLines:
    def test_client_error_names_operation_resource_code_and_message(self):
        err = client_error("ValidationException", "Role is invalid\n  (details)")

        line = one_line("CreatePipeline", "pipeline p", err)

        assert line == "CreatePipeline on pipeline p: ValidationException: Role is invalid (details)"

    @pytest.mark.parametrize("err, expected", [
        (NoCredentialsError(), "no AWS credentials found"),
        (EndpointConnectionError(endpoint_url="https://x"), "EndpointConnectionError: Could not connect"),
    ])
    def test_botocore_errors_are_one_line(self, err, expected):
        line = one_line("DescribePipeline", "pipeline p", err)

        assert line.startswith("DescribePipeline on pipeline p: ") and expected in line
        assert "\n" not in line

    @pytest.mark.parametrize("code, message, expected", [
        ("ResourceNotFound", "", True),
        ("ValidationException", "Could not find pipeline with PipelineName p.", True),  # moto's wording
        ("ValidationException", "Role is invalid", False),
        ("404", "", True),
    ])
    def test_not_found(self, code, message, expected):
        assert is_not_found(client_error(code, message)) is expected

    def test_dry_run_shows_short_values_whole_and_long_ones_by_size_and_hash(self):
        assert show("wavepipe-example") == "wavepipe-example"
        assert show({"Mode": "OFF"}) == '{"Mode": "OFF"}'
        assert show("x" * 5000).startswith("<5000 chars sha256:")
        assert show(b"abc").startswith("<3 bytes sha256:")


def policy(*statements) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(services, action="sts:AssumeRole", effect="Allow") -> dict:
    return {"Effect": effect, "Principal": {"Service": services}, "Action": action}


class TestValidTrust:
    def test_services_from_lists_strings_and_wildcard_actions(self):
        doc = policy(allow(SAGEMAKER), allow([SCHEDULER, "ec2.amazonaws.com"], action=["sts:*"]))

        assert trusted_services(doc) == {SAGEMAKER, SCHEDULER, "ec2.amazonaws.com"}

    def test_url_encoded_document_as_iam_returns_it(self):
        assert trusted_services(quote(json.dumps(policy(allow(SCHEDULER))))) == {SCHEDULER}


class TestInvalidTrust:
    @pytest.mark.parametrize("statement", [
        allow(SCHEDULER, effect="Deny"),
        allow(SCHEDULER, action="sts:TagSession"),
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "sts:AssumeRole"},
    ])
    def test_statements_that_do_not_let_a_service_assume_the_role(self, statement):
        assert missing_trust(policy(allow(SAGEMAKER), statement), (SCHEDULER, SAGEMAKER)) == [SCHEDULER]


class TestValidHtmlErrors:
    def test_an_html_error_page_is_shown_by_its_title(self):
        err = client_error("500", "<!doctype html>\n<html><title>500 Internal Server Error</title><h1>x</h1></html>")

        assert one_line("ListPipelineVersions", "pipeline p", err) == \
            "ListPipelineVersions on pipeline p: 500: 500 Internal Server Error"
