FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY comfysync ./comfysync
COPY app.py wsgi.py gunicorn.conf.py ./
COPY workflows ./workflows
RUN mkdir -p output_images data && useradd --create-home comfysync && chown comfysync output_images data
USER comfysync

ENV FLASK_HOST=0.0.0.0 FLASK_PORT=5000
EXPOSE 5000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
