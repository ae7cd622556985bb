"""Benchmarks of comfysync against the bundled ComfyUI simulator: `python -m bench`.

Every figure is measured on real processes (the simulator, gunicorn with the
gevent worker, and a separate load-generator process) talking over loopback.
"""
