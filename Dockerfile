# The omnifuse Airflow image: the official Airflow 3 image plus the pinned requirements and the package.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root requirements.txt /opt/omnifuse/requirements.txt
RUN pip install --no-cache-dir -r /opt/omnifuse/requirements.txt

COPY --chown=airflow:root pyproject.toml README.md /opt/omnifuse/
COPY --chown=airflow:root include /opt/omnifuse/include
RUN pip install --no-cache-dir --no-deps -e /opt/omnifuse

COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
ENV OMNIFUSE_HOME=/opt/omnifuse
