# PSNR and NCC of the DIP output against iteration (the paper's Fig. 2), written by
# `dippas evaluate --history`. Input: CSV with a header and columns iteration,psnr,ncc.
# Usage: gnuplot -e "in='history_points.csv'; out='history.png'; tau=38; has_ncc=1" plot_history.gp
if (!exists("out")) out = 'history.png'
if (!exists("tau")) tau = 38
if (!exists("has_ncc")) has_ncc = 1
set terminal pngcairo size 800,480 font ',11' noenhanced
set output out
set datafile separator ','
set title 'DIP inversion: PSNR and NCC against iteration'
set xlabel 'iteration'
set ylabel 'PSNR (dB)'
set grid
set key below
if (has_ncc) {
  set ytics nomirror
  set y2tics
  set y2label 'NCC'
  plot in using 1:2 skip 1 axes x1y1 with lines lw 2 lc rgb '#1f77b4' title 'PSNR', \
       tau axes x1y1 with lines dt 2 lc rgb 'gray' title sprintf('τ = %g dB', tau), \
       in using 1:3 skip 1 axes x1y2 with lines lw 2 lc rgb '#d62728' title 'NCC'
} else {
  plot in using 1:2 skip 1 with lines lw 2 lc rgb '#1f77b4' title 'PSNR', \
       tau with lines dt 2 lc rgb 'gray' title sprintf('τ = %g dB', tau)
}
