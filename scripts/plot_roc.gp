# ROC curves of the pooled NCC (SPEC §4), before and after anonymization, written by
# `dippas evaluate`. Inputs are CSVs with a header and columns fpr,tpr.
# Usage: gnuplot -e "before='roc_before.csv'; after='roc_after.csv'; out='roc.png'" plot_roc.gp
# (after, before_label, after_label and plot_title are optional)
if (!exists("out")) out = 'roc.png'
if (!exists("before_label")) before_label = 'originals'
if (!exists("after_label")) after_label = 'anonymized'
if (!exists("plot_title")) plot_title = 'ROC of the pooled NCC'
set terminal pngcairo size 640,640 font ',11' noenhanced
set output out
set datafile separator ','
set title plot_title
set xlabel 'false positive rate'
set ylabel 'true positive rate'
set xrange [0:1]
set yrange [0:1]
set size ratio -1
set grid
set key bottom right
if (exists("after")) {
  plot before using 1:2 skip 1 with lines lw 2 lc rgb '#1f77b4' title before_label, \
       after using 1:2 skip 1 with lines lw 2 lc rgb '#d62728' title after_label, \
       x with lines dt 2 lc rgb 'gray' title 'chance'
} else {
  plot before using 1:2 skip 1 with lines lw 2 lc rgb '#1f77b4' title before_label, \
       x with lines dt 2 lc rgb 'gray' title 'chance'
}
