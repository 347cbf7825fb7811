# One image for every service of docker-compose.yml: Spark master, workers, history
# server and the job runner (driver). Build: docker compose build (or docker build -t cohortlake:0.1.0 .)
#
# Why not an apache/spark image: the official 4.x images are built on eclipse-temurin:17-jammy
# (Ubuntu 22.04), whose python3 is 3.10, below cohortlake's requires-python >=3.11. So the
# base is the official Python 3.11 image, Java 17 comes from Debian bookworm, and Spark
# itself from the pyspark wheel (it carries bin/spark-class, bin/spark-submit, sbin/ and
# jars/): the Spark that runs the cluster is then exactly the pyspark the driver and the
# executors import.
FROM python:3.11.15-slim-bookworm

# Must satisfy pyproject.toml's pyspark pin (>=4.0.1,<=4.2.0); tests/unit/test_compose.py checks it.
ARG SPARK_VERSION=4.2.0
ARG SPARK_UID=185

ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# Java 17 (a JDK, as Spark 4's own images use; SPARK-49117), procps for Spark's scripts.
# /usr/share/man/man1 is missing in slim images and some JDK postinst scripts need it.
# /opt/java is an architecture-independent JAVA_HOME.
RUN set -eux; \
    mkdir -p /usr/share/man/man1; \
    apt-get update; \
    apt-get install -y --no-install-recommends openjdk-17-jdk-headless procps; \
    rm -rf /var/lib/apt/lists/*; \
    ln -s "$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")" /opt/java; \
    /opt/java/bin/java -version

ENV JAVA_HOME=/opt/java \
    PYSPARK_PYTHON=python3 \
    PYSPARK_DRIVER_PYTHON=python3

RUN groupadd --system --gid "${SPARK_UID}" spark; \
    useradd --system --uid "${SPARK_UID}" --gid spark --create-home --home-dir /home/spark spark

WORKDIR /opt/cohortlake

# The package and its dependencies, with pyspark pinned exactly (spark-submit, spark-class
# and the jars come with it into /usr/local).
COPY pyproject.toml README.md ./
COPY src/ src/
RUN set -eux; \
    pip install "pyspark==${SPARK_VERSION}" .; \
    test "$(python -c 'import pyspark; print(pyspark.__version__)')" = "${SPARK_VERSION}"; \
    rm -rf build src/*.egg-info

# Job entry points, cohort definitions and expectation suites, used from this folder
# (jobs find expectations/ beside jobs/; the variable says it explicitly). In the repository
# cohort_defs and expectations are links to the package data under src/cohortlake/ (the
# installed package and the zip carry the same files); the image copies the link targets.
COPY jobs/ jobs/
COPY src/cohortlake/cohort_defs/ cohort_defs/
COPY src/cohortlake/expectations/ expectations/
ENV COHORTLAKE_EXPECTATIONS=/opt/cohortlake/expectations

# The zip that spark-submit --py-files ships to the driver and the executors.
RUN cohortlake bundle --out dist/cohortlake.zip

# Mount points of the compose volumes: a named volume starts as a copy of the image's
# folder, owner included, so the spark user can write the lakehouse and the event logs.
RUN mkdir -p /lakehouse /spark-events; \
    chown spark:spark /lakehouse /spark-events

USER spark

# master RPC, master UI, worker UIs, driver UI, history server UI
EXPOSE 7077 8080 8081 8082 4040 18080

CMD ["spark-submit", "--version"]
