# SPDX-License-Identifier: MIT
#
# A benchmark table as lines: the first column is x, every further column
# one series. scripts/bench sets, with gnuplot -e:
#   dat    the .dat file          out    the .svg to write
#   ncol   columns in the table   names  series names, space separated
#   xname  the x column's name    logx   1: x is a size in bytes: log scale
#   title  the plot's title

set terminal svg size 800,480 dynamic noenhanced font "sans,12" background "#ffffff"
set output out
set title title
set xlabel xname
set key outside right top
set grid
if (logx) {
	set logscale x 2
	set format x "%.0b%B"
}
set yrange [0:*]
plot for [i=2:ncol] dat using 1:i with linespoints pointtype 7 pointsize 0.6 \
	title word(names, i - 1)
