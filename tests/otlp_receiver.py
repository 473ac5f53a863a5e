#!/usr/bin/env python3
"""An OTLP/HTTP logs receiver for courier's tests (tests/sinks_otlp.rs), in its own process.

Every request is decoded with the OpenTelemetry project's official generated protobuf classes
(PyPI `opentelemetry-proto`, installed by scripts/install-deps), never with courier's code,
and checked against the OTLP specification ("OTLP/HTTP"): the method and path, the
Content-Type (application/x-protobuf or application/json), Content-Encoding gzip when the
request says so, the OTLP/JSON mapping (lowerCamelCase keys, hex trace and span ids, enum
values as integers), and per record the fields courier must set (observed time, a severity
number that matches the text, a 16-byte trace id when one is given, an 8-byte span id when one
is given, unique attribute keys; per resource a string `service.name`). A request that breaks a rule is answered 400
with a `google.rpc.Status` and its violation recorded.

Usage: otlp_receiver.py --port-file FILE [--path /v1/logs] [--header NAME=VALUE ...]
                        [--tls-cert PEM --tls-key PEM]
  --header: a header every request must carry with exactly this value (else 401).
  --tls-cert/--tls-key: serve HTTPS with this certificate (Python's ssl module, OpenSSL).
The port it listens on (loopback, chosen by the system) is written to FILE once it listens.

Control (JSON over HTTP, same port):
  POST /_script  {"answers": [{"status": 429, "retry_after": "1"}, ...]}: answers for the
        next logs requests, one each, in order (then full success again). An answer may have
        "partial": {"rejected": N, "message": "..."} (with status 200), "times": K (repeat K
        times) and "message" (the Status message of a failure).
  POST /_limit   {"max_records": N}: answer 413 to any request of more than N records
        (0: no limit).
  GET  /_requests: every logs request received: its status, headers, encoding and decoded
        records, and the violations found.
"""

import argparse
import base64
import gzip
import json
import os
import re
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

SEVERITY_OF_TEXT = {"DEBUG": 5, "INFO": 9, "WARN": 13, "ERROR": 17}
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")

LOCK = threading.Lock()
STATE = {"answers": [], "max_records": 0, "requests": []}


def status_bytes(code, message):
    """A google.rpc.Status {code, message} in protobuf wire format (its two scalar fields)."""
    msg = message.encode()
    out = bytearray()
    out += b"\x08" + varint(code)
    out += b"\x12" + varint(len(msg)) + msg
    return bytes(out)


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def any_value(v):
    """An AnyValue as a plain Python value (for the test to compare)."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return v.int_value
    if kind == "double_value":
        return v.double_value
    if kind == "bytes_value":
        return {"bytes": base64.b64encode(v.bytes_value).decode()}
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    raise ValueError(kind)


def json_key_violations(node, path, out):
    """OTLP/JSON: field names are lowerCamelCase (no snake_case)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if "_" in k:
                out.append(f"OTLP/JSON field {path}.{k} is not lowerCamelCase")
            json_key_violations(v, f"{path}.{k}", out)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            json_key_violations(v, f"{path}[{i}]", out)


def parse_json(body, violations):
    """OTLP/JSON → the protobuf message: checks the mapping's rules first (hex ids, enum
    integers, lowerCamelCase), then turns the hex ids into base64 for protobuf's parser."""
    doc = json.loads(body)
    json_key_violations(doc, "", violations)
    for rl in doc.get("resourceLogs", []):
        for sl in rl.get("scopeLogs", []):
            for r in sl.get("logRecords", []):
                for key, pattern in (("traceId", HEX32), ("spanId", HEX16)):
                    value = r.get(key)
                    if value is None or value == "":
                        continue
                    if not isinstance(value, str) or not pattern.match(value):
                        violations.append(f"{key} {value!r} is not lower-case hex of the right length")
                        continue
                    r[key] = base64.b64encode(bytes.fromhex(value)).decode()
                sev = r.get("severityNumber")
                if sev is not None and not isinstance(sev, int):
                    violations.append(f"severityNumber {sev!r} is not an integer")
    request = logs_service_pb2.ExportLogsServiceRequest()
    json_format.ParseDict(doc, request)
    return request


def check_and_flatten(request, violations):
    """The spec's per-record rules; the records as plain dicts."""
    records = []
    for rl in request.resource_logs:
        resource = {kv.key: any_value(kv.value) for kv in rl.resource.attributes}
        if not isinstance(resource.get("service.name"), str) or not resource.get("service.name"):
            violations.append(f"resource without a string service.name: {resource}")
        for sl in rl.scope_logs:
            for r in sl.log_records:
                keys = [kv.key for kv in r.attributes]
                if len(keys) != len(set(keys)):
                    violations.append(f"duplicate attribute keys {keys}")
                if r.observed_time_unix_nano == 0:
                    violations.append("observed_time_unix_nano not set")
                if not (0 <= r.severity_number <= 24):
                    violations.append(f"severity_number {r.severity_number} out of range")
                expected = SEVERITY_OF_TEXT.get(r.severity_text.upper())
                if expected is not None and r.severity_number != expected:
                    violations.append(
                        f"severity_text {r.severity_text} with severity_number {r.severity_number}"
                    )
                if len(r.trace_id) not in (0, 16) or (r.trace_id and not any(r.trace_id)):
                    violations.append(f"trace_id of {len(r.trace_id)} bytes (16 expected)")
                if len(r.span_id) not in (0, 8):
                    violations.append(f"span_id of {len(r.span_id)} bytes (8 expected)")
                records.append(
                    {
                        "resource": resource,
                        "scope": sl.scope.name,
                        "time_unix_nano": r.time_unix_nano,
                        "observed_time_unix_nano": r.observed_time_unix_nano,
                        "severity_number": r.severity_number,
                        "severity_text": r.severity_text,
                        "body": any_value(r.body) if r.HasField("body") else None,
                        "attributes": {kv.key: any_value(kv.value) for kv in r.attributes},
                        "trace_id": r.trace_id.hex(),
                    }
                )
    return records


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    path_expected = "/v1/logs"
    required_headers = {}

    def log_message(self, fmt, *args):
        sys.stderr.write("otlp_receiver: " + (fmt % args) + "\n")

    def reply(self, status, body=b"", content_type="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length)

    def do_GET(self):
        if self.path == "/_requests":
            with LOCK:
                body = json.dumps(STATE["requests"]).encode()
            return self.reply(200, body)
        self.reply(404)

    def do_POST(self):
        body = self.read_body()
        if self.path == "/_script":
            answers = []
            for a in json.loads(body)["answers"]:
                answers.extend([a] * int(a.get("times", 1)))
            with LOCK:
                STATE["answers"] = answers
            return self.reply(204)
        if self.path == "/_limit":
            with LOCK:
                STATE["max_records"] = int(json.loads(body)["max_records"])
            return self.reply(204)
        self.logs(body)

    def logs(self, body):
        headers = {k.lower(): v for k, v in self.headers.items()}
        entry = {
            "path": self.path,
            "headers": headers,
            "violations": [],
            "records": [],
            "body_bytes": len(body),
        }
        violations = entry["violations"]
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = content_type == "application/json"

        def answer(status, message="", partial=None, extra=None):
            entry["status"] = status
            entry["partial"] = partial
            with LOCK:
                STATE["requests"].append(entry)
            if 200 <= status < 300:
                response = logs_service_pb2.ExportLogsServiceResponse()
                if partial:
                    response.partial_success.rejected_log_records = partial["rejected"]
                    response.partial_success.error_message = partial.get("message", "")
                if is_json:
                    out = json_format.MessageToJson(response).encode()
                    return self.reply(status, out, "application/json", extra)
                return self.reply(status, response.SerializeToString(), "application/x-protobuf", extra)
            if is_json:
                out = json.dumps({"code": 3, "message": message}).encode()
                return self.reply(status, out, "application/json", extra)
            return self.reply(status, status_bytes(3, message), "application/x-protobuf", extra)

        if self.path != self.path_expected:
            return answer(404, f"no logs endpoint at {self.path}")
        for name, value in self.required_headers.items():
            if headers.get(name) != value:
                return answer(401, f"missing or wrong {name} header")
        if content_type not in ("application/x-protobuf", "application/json"):
            violations.append(f"Content-Type {content_type!r}")
            return answer(415, "unsupported content type")
        encoding = headers.get("content-encoding", "").lower()
        entry["gzip"] = encoding == "gzip"
        if encoding == "gzip":
            try:
                body = gzip.decompress(body)
            except Exception as e:  # noqa: BLE001 - any decompression failure is the sender's
                violations.append(f"Content-Encoding gzip but the body is not gzip: {e}")
                return answer(400, "bad gzip")
        elif encoding not in ("", "identity"):
            violations.append(f"Content-Encoding {encoding!r}")
            return answer(415, "unsupported content encoding")
        entry["encoding"] = "json" if is_json else "protobuf"
        try:
            if is_json:
                request = parse_json(body, violations)
            else:
                request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
        except Exception as e:  # noqa: BLE001 - an undecodable body is a violation
            violations.append(f"cannot decode the request: {e}")
            return answer(400, "undecodable request")
        entry["records"] = check_and_flatten(request, violations)
        if violations:
            return answer(400, "; ".join(violations))
        n = len(entry["records"])
        with LOCK:
            limit = STATE["max_records"]
            scripted = STATE["answers"].pop(0) if STATE["answers"] else None
        if limit and n > limit:
            return answer(413, f"{n} records is more than {limit}")
        if scripted is None:
            return answer(200)
        extra = {}
        if "retry_after" in scripted:
            extra["Retry-After"] = str(scripted["retry_after"])
        return answer(
            int(scripted["status"]),
            scripted.get("message", ""),
            scripted.get("partial"),
            extra,
        )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--path", default="/v1/logs")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    Handler.path_expected = args.path
    Handler.required_headers = {}
    for h in args.header:
        name, _, value = h.partition("=")
        Handler.required_headers[name.lower()] = value
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
