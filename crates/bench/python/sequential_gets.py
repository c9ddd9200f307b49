#!/usr/bin/env python3
"""Latency of each of N sequential `GET /cluster/resources` on ONE new keep-alive connection.

Shows what a connection's first requests cost against its steady state (docs/performance.md,
"Round 7", "Which request is the slow one"). Start a mock first, e.g.

    target/release/mock-server --store memory --seed <fixture with 10,000 VMs> \
        --http-listen 127.0.0.1:8005 --listen 127.0.0.1:8006

then: sequential_gets.py PORT N http|https   (logs in as root@pam / secret)
Prints the milliseconds of each request, the whole answer read, in order.
"""
import http.client
import json
import socket
import ssl
import sys
import time
import urllib.parse


def main() -> None:
    host, port, n = "127.0.0.1", int(sys.argv[1]), int(sys.argv[2])
    tls = sys.argv[3] == "https"
    ctx = ssl._create_unverified_context()
    login = (http.client.HTTPSConnection(host, port, context=ctx) if tls
             else http.client.HTTPConnection(host, port))
    login.request("POST", "/api2/json/access/ticket", "username=root%40pam&password=secret",
                  {"Content-Type": "application/x-www-form-urlencoded"})
    ticket = json.loads(login.getresponse().read())["data"]["ticket"]
    request = ("GET /api2/json/cluster/resources HTTP/1.1\r\nHost: x\r\n"
               f"Cookie: PVEAuthCookie={urllib.parse.quote(ticket)}\r\n\r\n").encode()
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls:
        sock = ctx.wrap_socket(sock)
    buf = bytearray(64 << 20)
    view = memoryview(buf)
    out = []
    for _ in range(n):
        start = time.perf_counter()
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        end = head.index(b"\r\n\r\n") + 4
        length = next(int(line.split(b":", 1)[1]) for line in head[:end].split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        got = len(head) - end
        while got < length:
            got += sock.recv_into(view[got:], 1 << 20)
        out.append((time.perf_counter() - start) * 1000)
    print(" ".join(f"{ms:.1f}" for ms in out))


if __name__ == "__main__":
    main()
