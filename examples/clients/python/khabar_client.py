"""What the khabar example clients share: the channel and its call policies, credentials, and
reading the google.rpc.BadRequest details of an error.

The khabar.v1 stubs are generated from proto/, not committed; see the README ("Calling khabar
from your service").
"""

import argparse
import json
import os
import sys

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

try:
    from khabar.v1 import (  # noqa: F401 (re-exported for the programs)
        article_service_pb2,
        article_service_pb2_grpc,
        feed_pb2,
        feed_pb2_grpc,
        ingest_pb2,
        ingest_pb2_grpc,
    )
except ImportError as missing:
    print(
        f"the khabar.v1 stubs are not importable ({missing}); from the repository root:\n"
        "  python3 -m grpc_tools.protoc -I proto --python_out=examples/clients/python/gen \\\n"
        "    --grpc_python_out=examples/clients/python/gen proto/khabar/v1/*.proto\n"
        "and run with PYTHONPATH=examples/clients/python/gen",
        file=sys.stderr,
    )
    sys.exit(2)

# Exit codes: the server refused something; the server could not be reached or used.
REFUSED = 1
TROUBLE = 2

# UNAVAILABLE means the call did not reach a working server (connection refused or reset, server
# shutting down), so these calls are retried by the channel itself. Ingest is idempotent by its
# natural key (source.id, uri): a retry of a call whose answer was lost answers UNCHANGED. Ack only
# moves a cursor forward, and the rest only read. INVALID_ARGUMENT, FAILED_PRECONDITION, NOT_FOUND
# and RESOURCE_EXHAUSTED would fail the same way again, so they are never retried.
RETRIED_METHODS = [
    {"service": "khabar.v1.IngestService", "method": "Ingest"},
    {"service": "khabar.v1.ArticleService", "method": "GetArticle"},
    {"service": "khabar.v1.ArticleService", "method": "ListArticles"},
    {"service": "khabar.v1.FeedService", "method": "Ack"},
    {"service": "khabar.v1.FeedService", "method": "GetConsumer"},
    {"service": "khabar.v1.FeedService", "method": "ListConsumers"},
]
SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": RETRIED_METHODS,
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.2s",
                "maxBackoff": "5s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}

CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    # A feed can stay quiet for long; pings find a dead connection (a NAT or load balancer that
    # dropped it) within keepalive_time + keepalive_timeout. khabar answers every ping and sets no
    # minimum interval; proxies in between may (Envoy, nginx), so stay at 30 s or more.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # A subscriber sends nothing after its request; without this, gRPC stops pinging after two
    # pings with no data sent.
    ("grpc.http2.max_pings_without_data", 0),
    # Articles can be large; khabar's default limit is 4 MiB (--max-message-bytes).
    ("grpc.max_receive_message_length", 64 << 20),
]

STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds --server, --token and --ca-cert, with the environment variables khabar's CLI uses."""
    parser.add_argument(
        "--server",
        default=os.environ.get("KHABAR_SERVER", "127.0.0.1:50051"),
        help="host:port, or an http:// or https:// URL (default $KHABAR_SERVER or 127.0.0.1:50051)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("KHABAR_TOKEN"),
        help="bearer token, when the server requires one (default $KHABAR_TOKEN)",
    )
    parser.add_argument(
        "--ca-cert", help="PEM CA certificate to trust for TLS (https:// without it: system roots)"
    )


def channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to the server the arguments name, with the retry and keepalive policies."""
    target = args.server
    tls = target.startswith("https://") or args.ca_cert is not None
    for scheme in ("http://", "https://"):
        target = target.removeprefix(scheme)
    target = target.rstrip("/")
    if not tls:
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
    roots = None
    if args.ca_cert:
        with open(args.ca_cert, "rb") as pem:
            roots = pem.read()
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), CHANNEL_OPTIONS)


def metadata(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Call metadata: the bearer token, if any."""
    return [("authorization", f"Bearer {args.token}")] if args.token else []


def field_violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of the google.rpc.BadRequest details of a failed call."""
    status = rpc_status.from_call(error)
    if status is None:
        return []
    violations = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return violations


def is_trouble(error: grpc.RpcError) -> bool:
    """Whether an error says the server could not be reached or used, rather than a refusal."""
    return error.code() in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAUTHENTICATED,
    )


def use_utf8_output() -> None:
    """Articles are often Arabic: print UTF-8 whatever the locale says."""
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(encoding="utf-8", line_buffering=True)
