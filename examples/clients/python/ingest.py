"""Sends articles to khabar: one call per file (`one`), or a stream of many (`stream`).

    python3 ingest.py one ARTICLE.json [...]      # Ingest, one JSON IngestRequest per file
    python3 ingest.py stream ARTICLES.ndjson      # IngestStream, one IngestRequest per line

Requests are proto3 JSON, as grpcurl takes them (tests/fixtures/*.ingest.json). Prints one line
per article with its outcome, and for a rejected article one indented line per field violation.
Exit code 0 when every article was stored, 1 when any was rejected, 2 when the server could not
be reached or used.
"""

import argparse
import collections
import sys

import grpc
from google.protobuf import json_format

from khabar_client import (
    REFUSED,
    STATUS_NAMES,
    TROUBLE,
    add_connection_arguments,
    channel,
    field_violations,
    ingest_pb2,
    ingest_pb2_grpc,
    is_trouble,
    metadata,
    use_utf8_output,
)

REJECTED = ingest_pb2.INGEST_OUTCOME_REJECTED
# A deadline that expired may have done so after the article was stored; sending it again is
# safe because ingest is idempotent by (source.id, uri), so the retry answers UNCHANGED.
DEADLINE_ATTEMPTS = 3


def outcome_name(outcome: int) -> str:
    return ingest_pb2.IngestOutcome.Name(outcome).removeprefix("INGEST_OUTCOME_")


def stored(label: str, response: ingest_pb2.IngestResponse) -> str:
    return (
        f"{label}: {outcome_name(response.outcome)} id={response.id} "
        f"version={response.version} cursor={response.cursor}"
    )


def print_rejection(label: str, code: str, message: str, violations: list[tuple[str, str]]) -> None:
    if violations:
        print(f"{label}: REJECTED {code} ({len(violations)} field violations)")
        for field, description in violations:
            print(f"  {field}: {description}")
    else:
        print(f"{label}: REJECTED {code} {message}")


def ingest_one(stub, path: str, args) -> bool:
    """Ingests the request in `path`; whether the article was stored."""
    with open(path, encoding="utf-8") as file:
        request = json_format.Parse(file.read(), ingest_pb2.IngestRequest())
    for attempt in range(1, DEADLINE_ATTEMPTS + 1):
        try:
            response = stub.Ingest(request, timeout=args.deadline, metadata=metadata(args))
            print(stored(path, response))
            return True
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED and attempt < DEADLINE_ATTEMPTS:
                print(f"{path}: deadline exceeded, sending again", file=sys.stderr)
                continue
            if is_trouble(error):
                raise
            # INVALID_ARGUMENT carries google.rpc.BadRequest; FAILED_PRECONDITION (a retracted
            # article) and RESOURCE_EXHAUSTED (too large) only a message.
            print_rejection(path, error.code().name, error.details(), field_violations(error))
            return False
    return False


def ingest_stream(stub, path: str, args) -> dict[str, int]:
    """Streams the requests of an NDJSON file; counts of each outcome."""
    # Line numbers of the requests sent and not answered yet: answers come in request order.
    unanswered = collections.deque()
    counts = collections.Counter()

    def requests():
        # Read lazily: gRPC pulls from this generator only as flow control allows, so a large
        # file is never held in memory.
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                if not line.strip():
                    continue
                try:
                    request = json_format.Parse(line, ingest_pb2.IngestRequest())
                except json_format.ParseError as error:
                    print(f"line {number}: not an IngestRequest: {error}", file=sys.stderr)
                    counts["REJECTED"] += 1
                    continue
                unanswered.append(number)
                yield request

    for response in stub.IngestStream(requests(), metadata=metadata(args)):
        label = f"line {unanswered.popleft()}"
        counts[outcome_name(response.outcome)] += 1
        if response.outcome == REJECTED:
            error = response.error
            violations = [(v.field, v.description) for v in error.violations]
            code = STATUS_NAMES.get(error.code, str(error.code))
            print_rejection(label, code, error.message, violations)
        else:
            print(stored(label, response))
    return counts


def main() -> int:
    use_utf8_output()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_connection_arguments(parser)
    parser.add_argument(
        "--deadline", type=float, default=10.0, help="seconds for each Ingest call (default 10)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("one", help="one Ingest call per file")
    one.add_argument("files", nargs="+", metavar="ARTICLE.json")
    stream = commands.add_parser("stream", help="one IngestStream for an NDJSON file")
    stream.add_argument("file", metavar="ARTICLES.ndjson")
    args = parser.parse_args()

    with channel(args) as chan:
        stub = ingest_pb2_grpc.IngestServiceStub(chan)
        try:
            if args.command == "one":
                results = [ingest_one(stub, path, args) for path in args.files]
                return 0 if all(results) else REFUSED
            counts = ingest_stream(stub, args.file, args)
        except grpc.RpcError as error:
            # Articles already answered are stored; sending the file again is safe.
            print(f"failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return TROUBLE
        except (OSError, json_format.ParseError) as error:
            print(f"failed: {error}", file=sys.stderr)
            return TROUBLE
    print(
        f"{counts['CREATED']} created, {counts['UPDATED']} updated, "
        f"{counts['UNCHANGED']} unchanged, {counts['COUNTERS_UPDATED']} counters updated, "
        f"{counts['REJECTED']} rejected"
    )
    return REFUSED if counts["REJECTED"] else 0


if __name__ == "__main__":
    sys.exit(main())
