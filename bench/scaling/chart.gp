# Chart of bench/scaling medians: wall/ideal and throughput against concurrent tasks.
#   gnuplot -e "medians='DIR/scaling-medians.csv'; output='scaling.png'; mean_ms=60; subtitle='...'" chart.gp
# Columns: level,workers,concurrency,runs,topics,ideal_ms,wall_ms,span_ms,wall_ratio,span_ratio,
# completed,completed_per_s,sink_cpu_ms,broker_cpu_ms,workers_cpu_ms,sink_cpu_share,batches,steady,
# last_wave_ms. Optional: runs='DIR/scaling.csv' (every run, drawn as points).
if (!exists("subtitle")) subtitle = ""
set terminal pngcairo size 1300,600 font "DejaVu Sans,10"
set output output
set datafile separator ","
set key autotitle columnhead
set logscale x
set xtics (8, 20, 50, 100, 200, 500)
set xrange [6:650]
set grid
set xlabel "concurrent tasks (worker processes x --concurrency)"
blue = "#2471a3"; green = "#229954"; red = "#c0392b"; gray = "#7f8c8d"
set multiplot layout 1,2 title "bench/scaling: topicflow with a sleep handler, against the ideal (topics x mean work / concurrency)\n".subtitle

set title "time against the ideal (lower is better; target <= 1.2)"
set ylabel "time / ideal"
stats medians using 9 nooutput
top = STATS_max > 1.3 ? STATS_max * 1.1 : 1.4
set yrange [0.95:top]
set key top left Left reverse
plot medians using ($2*$3):9 with linespoints lw 3 pt 5 lc rgb blue title "wall (producer start to exit), median", \
     (exists("runs") ? runs : medians) using ($2*$3):9 with points pt 1 ps 1 lc rgb blue title "wall, each run", \
     medians using ($2*$3):10 with linespoints lw 2 pt 7 lc rgb green title "work span (first registration to last completion)", \
     1.2 with lines lw 1 dt 2 lc rgb red title "target 1.2", \
     1.0 with lines lw 1 dt 3 lc rgb gray title "ideal"

set title "throughput, and the sink's CPU"
set ylabel "completed topics / s (log)"
set logscale y
set yrange [*:*]
set y2label "sink CPU, % of one core"
set y2range [0:100]
set y2tics
set ytics nomirror
set key top left Left reverse
plot medians using ($2*$3):12 with linespoints lw 3 pt 5 lc rgb blue title "completed / s (topics / wall)", \
     x * 1000.0 / mean_ms with lines lw 1 dt 3 lc rgb gray title "ideal (concurrency / mean work)", \
     medians using ($2*$3):($16*100) axes x1y2 with linespoints lw 2 dt 2 pt 9 lc rgb red title "sink CPU (right axis)"
unset multiplot
