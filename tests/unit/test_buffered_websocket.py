"""The read-ahead WebSocket yields exactly the frames ComfyUI sent, however they arrive."""

from __future__ import annotations

import json
import random
import socket
import threading

import pytest
import websocket

from comfysync.comfy.watcher import BufferedWebSocket


def server_frame(payload: bytes, opcode: int = websocket.ABNF.OPCODE_TEXT) -> bytes:
    """A frame as a server sends it: unmasked."""
    return websocket.ABNF(fin=1, opcode=opcode, mask_value=0, data=payload).format()


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()
    ours.settimeout(5)
    ws = BufferedWebSocket(skip_utf8_validation=True)
    ws.sock, ws.connected = ours, True
    yield ws, theirs
    ours.close()
    theirs.close()


def messages() -> list[bytes]:
    # Short frames, 16-bit lengths and a 64-bit length (over 64 KB, bigger than one read).
    sizes = [0, 1, 125, 126, 300, 5000, 65535, 70_000, 10, 200_000, 3]
    return [json.dumps({"type": "status", "data": "x" * n}).encode() for n in sizes]


@pytest.mark.parametrize("split", ["all_at_once", "byte_by_byte", "random_pieces"])
def test_frames_come_out_whole_and_in_order(pair, split: str) -> None:
    ws, theirs = pair
    sent = messages()
    stream = b"".join(server_frame(m) for m in sent)
    if split == "all_at_once":
        pieces = [stream]
    elif split == "byte_by_byte":
        pieces = [stream[i : i + 1] for i in range(0, 4000)] + [stream[4000:]]
    else:
        rng, pieces, at = random.Random(7), [], 0
        while at < len(stream):
            step = rng.choice([1, 2, 3, 7, 100, 4096, 70_000])
            pieces.append(stream[at : at + step])
            at += step
    writer = threading.Thread(target=lambda: [theirs.sendall(p) for p in pieces])
    writer.start()
    received = [ws.recv_data_frame(control_frame=True) for _ in sent]
    writer.join()
    assert [op for op, _ in received] == [websocket.ABNF.OPCODE_TEXT] * len(sent)
    assert [frame.data for _, frame in received] == sent


def test_a_closed_socket_still_raises(pair) -> None:
    ws, theirs = pair
    theirs.sendall(server_frame(b'{"type": "status"}'))
    theirs.close()
    assert ws.recv_data_frame()[1].data == b'{"type": "status"}'
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv_data_frame()
