"""Distillation methods, each readable alone over one batch/step contract: LADD (``ladd``, its ``heads`` and GAN
``losses``), regression (``regression``), and the student's times and folder (``schedule``, ``student``)."""
