#!/bin/sh
# wordcount.sh: a topicflow exec handler in plain POSIX sh + awk. Counts the payload's lines,
# words and bytes, finds its longest and most frequent word, and prints one line of JSON:
#
#   topicflow run --handler 'exec:sh examples/handlers/wordcount.sh' examples/topics.txt
#   echo 'A practical guide to ZeroMQ' | sh examples/handlers/wordcount.sh
#
# Contract (docs/handlers.md): payload on stdin; TOPICFLOW_KEY/JOB/ATTEMPT in the environment
# (optional); stdout is the result; exit 0 completed, 75 retry later, anything else a permanent
# failure whose stderr tail is the topic's error.
#
# An empty or blank payload is a permanent failure (exit 1). WORDCOUNT_TEMPFAIL_ATTEMPTS=N makes
# attempts 1..N exit 75 (to watch retries); off by default.
set -eu

fail() {
  echo "wordcount: $2${TOPICFLOW_KEY:+ (key \"$TOPICFLOW_KEY\")}" >&2
  exit "$1"
}

attempt=${TOPICFLOW_ATTEMPT:-1}
tempfail=${WORDCOUNT_TEMPFAIL_ATTEMPTS:-0}
case $tempfail in
  '' | *[!0-9]*) fail 1 "WORDCOUNT_TEMPFAIL_ATTEMPTS='$tempfail' is not a number" ;;
esac
if [ "$attempt" -le "$tempfail" ]; then
  fail 75 "simulated transient failure on attempt $attempt of $tempfail asked for"
fi

# The payload goes to a temp file: it is read twice (bytes, then words), and may lack a final
# newline.
tmp=$(mktemp "${TMPDIR:-/tmp}/wordcount.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp"

bytes=$(wc -c <"$tmp" | tr -d ' ')
if ! grep -q '[^[:space:]]' "$tmp"; then
  fail 1 "empty payload: nothing to count"
fi

LC_ALL=C awk -v bytes="$bytes" -v key="${TOPICFLOW_KEY-}" -v has_key="${TOPICFLOW_KEY+1}" '
  function json(s) {
    gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s); gsub(/\r/, "\\r", s)
    gsub(/[\001-\037]/, "", s)
    return "\"" s "\""
  }
  {
    lines++
    for (i = 1; i <= NF; i++) {
      words++
      w = tolower($i)
      gsub(/^[[:punct:]]+|[[:punct:]]+$/, "", w)  # strip ASCII punctuation around the word
      if (w == "") continue
      count[w]++
      if (length(w) > length(longest)) longest = w
      if (count[w] > count[top] || (count[w] == count[top] && length(w) > length(top))) top = w
    }
  }
  END {
    printf "{"
    if (has_key) printf "\"key\":%s,", json(key)
    printf "\"lines\":%d,\"words\":%d,\"bytes\":%d,\"longest_word\":%s,\"most_frequent\":%s,\"count\":%d}\n",
      lines, words, bytes, json(longest), json(top), count[top]
  }
' "$tmp"
