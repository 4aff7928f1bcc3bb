"""Evaluation on real photos: COCO annotations, commands, engine runs, prompt coverage, reports."""
