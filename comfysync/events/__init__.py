"""Run events: what ComfyUI's frames say about a run, kept in the run store, streamed as SSE.

`frames` turns one prompt's WebSocket frames into events, `writer` appends
them to the store in batches, `stream` serves them as Server-Sent Events.
"""
