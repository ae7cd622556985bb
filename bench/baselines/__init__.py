"""Clients the gateway is compared with, all talking to ComfyUI (the simulator) directly.

- `direct`: the reference, the least any client must do (one persistent WebSocket).
- `per_request_socket`: a new WebSocket per request, then `/history` and `/view`.
- `polling`: submit, then poll `/history/<id>` every 0.5 s.

Each module holds one client class with the interface `bench.load` drives:
`await open(session)`, `await one(session) -> (prompt_id, bytes received)`, `await close()`.
"""
