"""Local infrastructure: a real Kafka (KRaft) broker and a real MinIO server as processes.

No Docker needed: Kafka's jars come from Maven Central and MinIO is built with ``go
install``, both cached outside the repository. ``docker-compose.yml`` here is the same
stack for machines that have a Docker engine.
"""
