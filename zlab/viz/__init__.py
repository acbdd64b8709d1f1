"""Every figure the labs and the app draw, one module per subject; data in, figures out (nothing here trains or samples).

- :mod:`zlab.viz.images`: image grids titled by the Shapes checker, conversions to uint8;
- :mod:`zlab.viz.curves`: training curves, plain-text tables;
- :mod:`zlab.viz.toy`: lab 01's 2D toy (points, paths, errors, time shifts);
- :mod:`zlab.viz.anatomy`: lab 02's views of the S3-DiT stream;
- :mod:`zlab.viz.teacher`: lab 03's recipe, text encodings and guidance sweeps;
- :mod:`zlab.viz.features`: lab 04's and the app's feature maps, head logits and scores;
- :mod:`zlab.viz.dmd`: the app's distribution-matching view (estimates, directions, strengths);
- :mod:`zlab.viz.ladd`: lab 05's toy clouds, schedules and training logs;
- :mod:`zlab.viz.evaluation`: measured settings with their intervals (labs 06 and 07);
- :mod:`zlab.viz.real`: lab 09's real-model views.
"""
