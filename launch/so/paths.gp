# paths.gp — draws the paths written by dpt-so-demo (launch/second-order-demo).
# Variables (gnuplot -e): dir, methods (space-separated, each dir/NAME.dat), titles (same
# order, words joined by '_'), prefix (PNG name prefix), levels (contour levels), xr, yr,
# logloss (1: log loss axis).
set terminal pngcairo size 900,650 font ",11"
n = words(methods)
file(i) = sprintf("%s/%s.dat", dir, word(methods, i))
title(i) = system(sprintf("echo %s | tr _ ' '", word(titles, i)))
colors = "#7f7f7f #1f77b4 #d62728 #2ca02c #9467bd"
set view map
unset surface
set contour base
eval sprintf("set cntrparam levels discrete %s", levels)
set table dir."/contours.dat"
splot dir."/grid.dat" using 1:2:3 with lines notitle
unset table
unset contour
set surface
set output sprintf("%s/%s_paths.png", dir, prefix)
set title "paths over the loss contours"
set xlabel "x / θ_0"
set ylabel "y / θ_1"
eval sprintf("set xrange [%s]", xr)
eval sprintf("set yrange [%s]", yr)
set key outside right
plot dir."/contours.dat" using 1:2 with lines lc rgb "#cccccc" title "contours", \
     for [i=1:n] file(i) using 2:3 with linespoints pt 7 ps 0.5 lw 1.5 lc rgb word(colors, i) title title(i)
set output sprintf("%s/%s_loss.png", dir, prefix)
set title "loss against iteration"
set xlabel "iteration"
set ylabel "loss"
set autoscale
set logscale x
if (logloss) { set logscale y; set format y "10^{%L}" }
set key inside top right
plot for [i=1:n] file(i) using ($1+1):4 with lines lw 2 lc rgb word(colors, i) title title(i)
