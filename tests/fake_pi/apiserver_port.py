"""`python -m tests.fake_pi.apiserver_port ADDRESS PORT API_PORT`: the FAKE K3s server's API port.

A plain TCP forwarder from ADDRESS:PORT (the fake server's own address, port 6443) to the test
control plane's API server on 127.0.0.1:API_PORT. TLS passes through untouched: the client
verifies the real API server's certificate, which names the fake Pis' addresses. Run by the
server node's supervisor while its k3s is active, so the port answers exactly when K3s would.
"""

import contextlib
import selectors
import socket
import sys

CHUNK = 65536


def serve(address: str, port: int, api_port: int) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, port))
    listener.listen(64)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    peers: dict[socket.socket, socket.socket] = {}

    def close(sock: socket.socket) -> None:
        other = peers.pop(sock, None)
        for s in (sock, other):
            if s is None:
                continue
            peers.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(s)
            s.close()

    while True:
        for key, _events in selector.select():
            sock = key.fileobj
            if sock is listener:
                client, _ = listener.accept()
                try:
                    upstream = socket.create_connection(("127.0.0.1", api_port), timeout=5)
                except OSError:
                    client.close()
                    continue
                for s in (client, upstream):
                    s.setblocking(False)
                    selector.register(s, selectors.EVENT_READ, None)
                peers[client], peers[upstream] = upstream, client
                continue
            try:
                data = sock.recv(CHUNK)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                close(sock)
                continue
            try:
                peers[sock].setblocking(True)  # small messages: a blocking send keeps it simple
                peers[sock].sendall(data)
                peers[sock].setblocking(False)
            except (OSError, KeyError):
                close(sock)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
