# Chart of bench/contention medians: wall time and status updates/s against worker count.
#   gnuplot -e "medians='DIR/contention-medians.csv'; output='contention.png'; subtitle='...'" chart.gp
# Optional variants of the direct design (their topicflow rows are not drawn again):
#   -e "extra1='DIR2/contention-medians.csv'; extra1_title='direct, synchronous=FULL'" (and extra2)
# With -e "topics=288; min_ms=20; max_ms=100" (handler sleep:MIN-MAX) the ideal is drawn too:
# topics x mean work / workers, but never less than one longest task.
# Columns of a medians CSV: design,workers,runs,wall_ms,span_ms,locked_errors,retries,gave_up,
# stuck,completed,status_writes,transactions,completed_per_s,writes_per_s
if (!exists("subtitle")) subtitle = ""
set terminal pngcairo size 1300,600 font "DejaVu Sans,10"
set output output
set datafile separator ","
set logscale x
set xtics (8, 20, 58, 100, 200, 500)
set xrange [6:260]
set samples 200
set grid
set xlabel "worker processes (concurrent tasks)"
red = "#c0392b"; orange = "#e67e22"; purple = "#8e44ad"; blue = "#2471a3"
set multiplot layout 1,2 title "bench/contention: per-row writers (direct) vs the batching sink (topicflow)\n".subtitle

# Plot commands are built as strings so the variants can be left out; rows are picked with grep
# so each design's points form one line.
series(col) = \
  "medians_t using 2:" . col . " with linespoints lw 3 pt 5 lc rgb blue title 'topicflow'" . \
  ", medians_d using 2:" . col . " with linespoints lw 2 pt 7 lc rgb red title 'direct (busy\\_timeout 5 ms, synchronous=NORMAL)'" . \
  (exists("extra1") ? ", extra1_d using 2:" . col . " with linespoints lw 2 dt 2 pt 9 lc rgb orange title extra1_title" : "") . \
  (exists("extra2") ? ", extra2_d using 2:" . col . " with linespoints lw 2 dt 4 pt 11 lc rgb purple title extra2_title" : "")
ideal_wall = ", ideal_s(x) with lines lw 1 dt 3 lc rgb 'gray40' title 'ideal (topics x mean work / N)'"
ideal_rate = ", topics / ideal_s(x) with lines lw 1 dt 3 lc rgb 'gray40' title 'ideal'"
ideal = exists("topics") && exists("min_ms") && exists("max_ms")
ideal_s(n) = (topics * (min_ms + max_ms) / 2.0 / n > max_ms ? topics * (min_ms + max_ms) / 2.0 / n : max_ms) / 1000.0
medians_t = "< grep ^topicflow, " . medians
medians_d = "< grep ^direct, " . medians
if (exists("extra1")) extra1_d = "< grep ^direct, " . extra1
if (exists("extra2")) extra2_d = "< grep ^direct, " . extra2
if (exists("extra1") && !exists("extra1_title")) extra1_title = "variant 1"
if (exists("extra2") && !exists("extra2_title")) extra2_title = "variant 2"

set title "wall time (lower is better)"
set ylabel "seconds"
set yrange [0:*]
set key below Left reverse maxrows 3 width -2
eval "plot " . series("($4/1000)") . (ideal ? ideal_wall : "")

set title "completed status updates per second (higher is better)"
set ylabel "completed topics / s (log)"
set logscale y
set yrange [*:*]
set key below Left reverse maxrows 3 width -2
eval "plot " . series("13") . (ideal ? ideal_rate : "")
unset multiplot
