#!/usr/bin/env bash
# Fetch ElasticMQ (an SQS-compatible server, Scala on the JVM) from Maven Central into a cache
# directory and print the path of its class-path file. The SQS source's tests run it with
#   java -Dconfig.file=<conf> -cp "$(cat <cp.txt>)" org.elasticmq.server.Main
# Idempotent: nothing is fetched when the class-path file exists and its jars are all there.
# Needs java (17) and mvn on PATH; reaches Maven Central only.
#
#   e2e/cluster/elasticmq.sh            # -> ~/.cache/lambdalet/elasticmq/1.6.11/cp.txt
#   ELASTICMQ_CACHE=/some/dir e2e/cluster/elasticmq.sh
set -euo pipefail

ELASTICMQ_VERSION="${ELASTICMQ_VERSION:-1.6.11}"
SCALA_BINARY="2.13"
cache="${ELASTICMQ_CACHE:-${HOME}/.cache/lambdalet/elasticmq}/${ELASTICMQ_VERSION}"
cp_file="${cache}/cp.txt"

complete() {
    [[ -s "$cp_file" ]] || return 1
    local jar
    while IFS= read -r -d ':' jar; do
        [[ -f "$jar" ]] || return 1
    done < <(tr -d '\n' <"$cp_file"; printf ':')
}

if complete; then
    echo "$cp_file"
    exit 0
fi

for tool in java mvn; do
    command -v "$tool" >/dev/null || { echo "[elasticmq] $tool is not on PATH" >&2; exit 1; }
done
mkdir -p "$cache"
# A throwaway project whose only purpose is its dependency tree; the jars go to a repository
# inside the cache directory, so the whole server lives (and is removed) in one place.
cat >"${cache}/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.lambdalet.test</groupId>
  <artifactId>elasticmq-fetch</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.elasticmq</groupId>
      <artifactId>elasticmq-server_${SCALA_BINARY}</artifactId>
      <version>${ELASTICMQ_VERSION}</version>
    </dependency>
  </dependencies>
</project>
EOF
echo "[elasticmq] fetching org.elasticmq:elasticmq-server_${SCALA_BINARY}:${ELASTICMQ_VERSION}" >&2
tmp_cp="${cp_file}.tmp"
mvn -q -B -f "${cache}/pom.xml" -Dmaven.repo.local="${cache}/repository" \
    dependency:build-classpath -Dmdep.outputFile="$tmp_cp" >&2
mv "$tmp_cp" "$cp_file"
complete || { echo "[elasticmq] class path incomplete: $cp_file" >&2; exit 1; }
echo "$cp_file"
