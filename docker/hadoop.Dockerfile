# syntax=docker/dockerfile:1
# apache/hadoop runs as the unprivileged user `hadoop`. A new named volume copies the owner of its mount point
# from the image, so the data directories are created here, owned by that user (otherwise Docker creates them
# root-owned and the namenode cannot format its directory).
FROM apache/hadoop:3.4.1
USER root
RUN mkdir -p /opt/hadoop/data/namenode /opt/hadoop/data/datanode \
 && chown -R hadoop /opt/hadoop/data
USER hadoop
