"""A stand-in for S3's ListObjectsV2, for the listing benchmark only (not a test double, not S3).

It answers the one call the listing makes, `GET /<bucket>?list-type=2` with `prefix`,
`delimiter`, `start-after`, `continuation-token`, `max-keys` and `encoding-type=url` (botocore
always sends it), in the XML shape of S3's ListBucketResult, from a sorted in-memory list of
keys with each key's `<Contents>` element rendered once at start. So its CPU per page is a
bisect and a join, and what a request costs is the configured `latency_ms`, slept in the
request's own thread: as S3, whose per-page cost is its round trip (work done on its fleet,
in parallel, not on the client's cores). No auth, no throttling (503 SlowDown), no other call,
no versioning, zero-byte objects only. `benchmarks/reconcile_bench.py` checks its pages
against moto's before it is used.
"""

from __future__ import annotations

import base64
import time
from bisect import bisect_left, bisect_right
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock, Thread
from typing import Iterable
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape

EMPTY_ETAG = "d41d8cd98f00b204e9800998ecf8427e"
MODIFIED = "2024-01-01T00:00:00.000Z"


class ListingServer:
    """`keys` (zero-byte objects) of `bucket`, served on 127.0.0.1:`port` (0: any free port)."""

    def __init__(self, bucket: str, keys: Iterable[str], latency_ms: float = 30.0, port: int = 0) -> None:
        self.bucket, self.latency = bucket, latency_ms / 1000
        self.names = sorted(keys)
        self.url_fragments = [self._contents(quote(k, safe="/")) for k in self.names]
        self.requests, self._lock = 0, Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]

    @staticmethod
    def _contents(key: str) -> str:
        return (f"<Contents><Key>{escape(key)}</Key><LastModified>{MODIFIED}</LastModified>"
                f"<ETag>&quot;{EMPTY_ETAG}&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass></Contents>")

    def start(self) -> "ListingServer":
        Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def page(self, prefix: str = "", delimiter: str = "", start_after: str = "", token: str = "",
             max_keys: int = 1000) -> tuple[list[int], list[str], str | None]:
        """(indices of the keys, common prefixes, the last entry if truncated) of one page."""
        names, marker = self.names, base64.urlsafe_b64decode(token).decode() if token else start_after
        i = bisect_left(names, prefix)
        if marker:
            i = max(i, bisect_right(names, marker))
        keys, folders, last = [], [], None
        while i < len(names) and names[i].startswith(prefix):
            if len(keys) + len(folders) == max_keys:
                return keys, folders, last
            rest = names[i][len(prefix):]
            cut = rest.find(delimiter) if delimiter else -1
            if cut < 0:
                keys.append(i)
                last, i = names[i], i + 1
                continue
            folder = prefix + rest[:cut + len(delimiter)]
            if folder > marker:  # a token that is a folder resumes past that folder
                folders.append(folder)
                last = folder
            i = bisect_left(names, folder[:-1] + chr(ord(folder[-1]) + 1))
        return keys, folders, None

    def render(self, query: dict[str, str]) -> bytes:
        url = query.get("encoding-type") == "url"
        enc = (lambda s: quote(s, safe="/")) if url else escape  # noqa: E731
        prefix, delimiter = query.get("prefix", ""), query.get("delimiter", "")
        max_keys = min(1000, int(query.get("max-keys", 1000)))
        keys, folders, last = self.page(prefix, delimiter, query.get("start-after", ""),
                                        query.get("continuation-token", ""), max_keys)
        head = [f"<Name>{self.bucket}</Name><Prefix>{enc(prefix)}</Prefix>"]
        if "start-after" in query:
            head.append(f"<StartAfter>{enc(query['start-after'])}</StartAfter>")
        if "continuation-token" in query:
            head.append(f"<ContinuationToken>{query['continuation-token']}</ContinuationToken>")
        if last is not None:
            head.append(f"<NextContinuationToken>{base64.urlsafe_b64encode(last.encode()).decode()}"
                        f"</NextContinuationToken>")
        head.append(f"<KeyCount>{len(keys) + len(folders)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>")
        if delimiter:
            head.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
        if url:
            head.append("<EncodingType>url</EncodingType>")
        head.append(f"<IsTruncated>{'true' if last is not None else 'false'}</IsTruncated>")
        fragments = self.url_fragments if url else None
        body = [fragments[i] if fragments else self._contents(self.names[i]) for i in keys]
        body += [f"<CommonPrefixes><Prefix>{enc(f)}</Prefix></CommonPrefixes>" for f in folders]
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
                '2006-03-01/">' + "".join(head) + "".join(body) + "</ListBucketResult>").encode()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
            # Headers and body go out as separate writes: without this, Nagle's algorithm and the
            # client's delayed ACK add about 40 ms to every response.
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802
                started = time.monotonic()
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                with server._lock:
                    server.requests += 1
                if parts.path.strip("/") != server.bucket or query.get("list-type") != "2":
                    return self._send(501, b"<Error><Code>NotImplemented</Code>"
                                           b"<Message>only ListObjectsV2</Message></Error>")
                body = server.render(query)
                # The round trip S3 would take: the rest of the latency, waited in this thread.
                time.sleep(max(0.0, server.latency - (time.monotonic() - started)))
                self._send(200, body)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_) -> None:
                pass

        return Handler
