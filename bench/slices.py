"""Pooled ratio of measurement slices against baselines read between them
(bench/run's refresh grant, bench/login_run's login).

    slices.py DIVISOR K V1..VK R0..RK FORMAT

V1..VK are the slices' rates and R0..RK the baseline readings around them
(R(i-1) before slice i, Ri after it). Slice i's ceiling is the mean of its
two readings divided by DIVISOR (2 for the refresh grant: two signatures per
request). FORMAT is a str.format template; its fields: ref_mean, ref_min,
ref_max, ref_n (the readings), val_mean (the slices' rates), k, and ratio,
which expands to "P% (slices a / b / ..., median M%)" with P the slices'
rates over their ceilings, summed.
"""
import statistics
import sys

div, k = float(sys.argv[1]), int(sys.argv[2])
vals = [float(x) for x in sys.argv[3:3 + k]]
refs = [float(x) for x in sys.argv[3 + k:3 + 2 * k + 1]]
fmt = sys.argv[3 + 2 * k + 1]
ceil = [(refs[i] + refs[i + 1]) / 2 / div for i in range(k)]
ratios = [vals[i] / ceil[i] * 100 for i in range(k)]
ratio = (f"{sum(vals) / sum(ceil) * 100:.1f}% (slices {' / '.join(f'{x:.1f}' for x in ratios)}, "
         f"median {statistics.median(ratios):.1f}%)")
print(fmt.format(ref_mean=statistics.mean(refs), ref_min=min(refs), ref_max=max(refs),
                 ref_n=len(refs), val_mean=statistics.mean(vals), k=k, ratio=ratio))
