"""What a run's checkpoints are used for outside training: evaluating EMA G (also called by the
loop, every ``eval.every`` steps), sampling grids, and exporting the generator.

Never imports ``gandist.train``: a saved run is read back without the training loop.
"""
