# The project's processing image, for `image.uri` in the config:
#   docker build -t <account>.dkr.ecr.<region>.amazonaws.com/wavepipe:<tag> .
#   docker push <account>.dkr.ecr.<region>.amazonaws.com/wavepipe:<tag>
# Only the dependencies are baked in. Each job unpacks the content-addressed code bundle the
# pipeline ships (steps/), so one image serves every code version and nothing is installed at
# job start (unlike the default AWS-managed image, which installs steps/requirements.txt from the
# wheelhouse upsert uploads). Python 3.11: one of the Pythons the pins support (pipeline/build/images.py).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY steps/requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
# SageMaker overrides the entrypoint with the step's ContainerEntrypoint (python3 bootstrap.py).
ENTRYPOINT ["python3"]
