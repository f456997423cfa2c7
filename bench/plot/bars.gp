# SPDX-License-Identifier: MIT
#
# A benchmark table as clustered bars: the first column is a label (one
# word), every further column one series. scripts/bench sets, with
# gnuplot -e:
#   dat    the .dat file          out    the .svg to write
#   ncol   columns in the table   names  series names, space separated
#   title  the plot's title

set terminal svg size 800,480 dynamic noenhanced font "sans,12" background "#ffffff"
set output out
set title title
set key outside right top
set grid ytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xtics rotate by 30 right nomirror
set yrange [0:*]
plot for [i=2:ncol] dat using i:xtic(1) title word(names, i - 1)
