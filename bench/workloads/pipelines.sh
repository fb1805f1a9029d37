#!/bin/sh
# A suite of short processes: $1 shell pipelines of seq | sort | gzip |
# gunzip (four processes each, and the shell's own).
n=${1:-40}
i=0
while [ "$i" -lt "$n" ]; do
  seq 2000 | sort -r | gzip | gunzip > /dev/null
  i=$((i + 1))
done
