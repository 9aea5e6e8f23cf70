#!/usr/bin/env bash
# Draws perf/run's plots from the data perf/report.py wrote: PNGs in OUT/plots/.
# usage: perf/plots.sh OUT_DIR
set -euo pipefail
d=$1/plots
common='set terminal pngcairo size 1000,560 font ",10"; set grid ytics; set style fill solid 0.8; set boxwidth 0.6'
if [ -s "$d/mpps.dat" ]; then
    gnuplot -e "$common; set output '$d/mpps.png'; set title 'Forwarding rate per configuration (median; bars: min-max)';
        set ylabel 'Mpps'; set xtics rotate by -35; set yrange [0:*];
        plot '$d/mpps.dat' using 0:2:xtic(1) with boxes lc rgb '#4477aa' notitle,
             '' using 0:2:3:4 with yerrorbars lc rgb 'black' pt 0 notitle"
fi
if [ -s "$d/cycles.dat" ]; then
    gnuplot -e "$common; set output '$d/cycles.png'; set title 'TSC cycles per packet, topology A (anygate: measured in the worker; references: TSC rate / packet rate)';
        set ylabel 'cycles / packet'; set xtics rotate by -35; set yrange [0:*];
        plot '$d/cycles.dat' using 0:2:xtic(1) with boxes lc rgb '#cc6677' notitle"
fi
if [ -s "$d/stages.dat" ]; then
    gnuplot -e "$common; set output '$d/stages.png'; set title 'Full pipeline, in memory: TSC cycles per packet added by each stage (bar) and running total (line)';
        set ylabel 'cycles / packet'; set xtics rotate by -25; set yrange [0:*]; set key top left;
        plot '$d/stages.dat' using 0:2:xtic(1) with boxes lc rgb '#228833' title 'added by the stage',
             '' using 0:3 with linespoints lw 2 lc rgb 'black' title 'cumulative'"
fi
if [ -s "$d/lookup.dat" ]; then
    gnuplot -e "$common; set output '$d/lookup.png'; set title 'Lookups per second against table size (one core)';
        set xlabel 'routes'; set ylabel 'million lookups / s'; set logscale x; set yrange [0:*]; set key top right;
        plot '$d/lookup.dat' using 1:2 with linespoints lw 2 title 'rte\\_lpm (dpdk-test-fib)',
             '' using 1:3 with linespoints lw 2 title 'anygate DIR-24-8, bulk'"
fi
ls "$d"/*.png 2>/dev/null || true
