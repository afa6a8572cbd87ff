#!/usr/bin/env python3
"""An HTTP/1.1 keep-alive server that answers every request after a fixed delay.

usage: bench/delay_server.py PORT [DELAY_MS] [BODY_BYTES]

The stand-in for a slow upstream in bench/http_fanout.c: one asyncio
process, "200 OK" with a body of BODY_BYTES (default 3000, about a digest)
after DELAY_MS (default 1000). Stopped by its pid.
"""
import asyncio
import sys


async def main(port, delay, body):
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
        len(body), body)

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        n = int(line.split(b":")[1])
                if n:
                    await reader.readexactly(n)
                await asyncio.sleep(delay)
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=16384)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port = int(sys.argv[1])
    delay = (int(sys.argv[2]) if len(sys.argv) > 2 else 1000) / 1000
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
    asyncio.run(main(port, delay, b"x" * size))
