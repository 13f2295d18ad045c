"""One helper redacts credentials in every URL FlowSchema shows."""

from __future__ import annotations

import os
import stat

import pytest
from pydantic import BaseModel

import flowschema_core as fs
from flowschema_core.redact import redact_text, redact_url


class _Row(BaseModel):
    id: int
    name: str


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://user:secret@db.example/x", "postgresql+psycopg://user:***@db.example/x"),
        ("https://api.example/u?api_key=S3CR3T&page=2", "https://api.example/u?api_key=***&page=2"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AK&X-Amz-Signature=abc&x=1", "https://b.s3.amazonaws.com/k?X-Amz-Credential=***&X-Amz-Signature=***&x=1"),
        ("https://api.example/u?Token=abc", "https://api.example/u?Token=***"),
        ("https://api.example/u?page=2", "https://api.example/u?page=2"),  # nothing secret: unchanged
        ("postgresql://app@localhost/crm", "postgresql://app@localhost/crm"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("postgresql://u:p#ss@host/db", "postgresql://u:***@host/db"),  # SQLAlchemy takes "#" unescaped
        ("postgresql://u:p/s?s@host/db?sslmode=require", "postgresql://u:***@host/db?sslmode=require"),
        ("https://ghp_token123@github.com/org/repo", "https://***@github.com/org/repo"),  # a token as the user name
        ("https://api.example/u?api_token=1&X-Api-Key=2&subscription-key=3&page=2",
         "https://api.example/u?api_token=***&X-Api-Key=***&subscription-key=***&page=2"),
    ],
)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_text_finds_urls_inside_messages():
    message = "Client error '500 Internal Server Error' for url 'https://x.example/a?access_token=abc&b=1'"
    assert redact_text(message) == "Client error '500 Internal Server Error' for url 'https://x.example/a?access_token=***&b=1'"


def test_sql_sink_names_hide_the_password():
    assert "secret" not in fs.SQLSink("postgresql://u:secret@h/db", "t").name


def test_outputs_are_no_more_readable_than_the_input(tmp_path):
    src = tmp_path / "private.csv"
    src.write_text("id,name\n1,a\nx,b\n")
    os.chmod(src, 0o600)
    out, dlq = tmp_path / "out.jsonl", tmp_path / "dlq.jsonl"
    fs.Pipeline(fs.CSVSource(src), _Row, fs.JSONLSink(out), fs.JSONLSink(dlq), executor="inline").run()
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dlq).st_mode) == 0o600
