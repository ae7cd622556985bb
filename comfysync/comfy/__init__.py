"""Talking to ComfyUI: HTTP client, WebSocket watcher, message shapes."""
