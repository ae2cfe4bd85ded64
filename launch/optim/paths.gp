# paths.gp — draws optimizer trajectories written by dpt-optim-demo (launch/seed-optimizers,
# launch/adaptive-demo). Variables (gnuplot -e): dir (the demo's OUTDIR), methods (space-
# separated names, each with dir/NAME.dat), titles (same order, words joined by '_'),
# prefix (PNG name prefix), levels (comma-separated contour levels), xr, yr ("lo:hi"),
# logloss (1: log scale for the loss axis).
set terminal pngcairo size 900,650 font ",11"
set datafile commentschars "#"
n = words(methods)
file(i) = sprintf("%s/%s.dat", dir, word(methods, i))
title(i) = system(sprintf("echo %s | tr _ ' '", word(titles, i)))
colors = "#1f77b4 #d62728 #2ca02c #9467bd"

# loss contours on the grid -> a table of contour lines
set view map
unset surface
set contour base
eval sprintf("set cntrparam levels discrete %s", levels)
set table dir."/contours.dat"
splot dir."/grid.dat" using 1:2:3 with lines notitle
unset table
unset contour
set surface

# 1. paths over the contours, all methods
set output sprintf("%s/%s_paths.png", dir, prefix)
set title "optimization path over the loss contours"
set xlabel "θ_0"
set ylabel "θ_1"
eval sprintf("set xrange [%s]", xr)
eval sprintf("set yrange [%s]", yr)
set key outside right
plot dir."/contours.dat" using 1:2 with lines lc rgb "#bbbbbb" title "loss contours", \
     for [i=1:n] file(i) using 2:3 with linespoints pt 7 ps 0.35 lw 1.5 lc rgb word(colors, i) title title(i)

# 2. loss against iteration
set output sprintf("%s/%s_loss.png", dir, prefix)
set title "loss against iteration"
set xlabel "iteration"
set ylabel "loss"
set autoscale
if (logloss) { set logscale y; set format y "10^{%L}" }
set key inside top right
plot for [i=1:n] file(i) using 1:4 with lines lw 2 lc rgb word(colors, i) title title(i)
unset logscale
set format y "% h"

# 3. the methods side by side, each path over the contours
set output sprintf("%s/%s_compare.png", dir, prefix)
set terminal pngcairo size 400*n,420 font ",10"
set output sprintf("%s/%s_compare.png", dir, prefix)
set multiplot layout 1,n title "comparison"
eval sprintf("set xrange [%s]", xr)
eval sprintf("set yrange [%s]", yr)
set xlabel "θ_0"
set ylabel "θ_1"
unset key
do for [i=1:n] {
  set title title(i)
  plot dir."/contours.dat" using 1:2 with lines lc rgb "#bbbbbb", \
       file(i) using 2:3 with linespoints pt 7 ps 0.3 lw 1.5 lc rgb word(colors, i)
}
unset multiplot
set output
