"""The Shapes world: vocabulary and captions, drawing, dataset, exact checker and metrics, prompt sets, feature net.

It imports no model and no distillation method; it serves run plumbing, measurement and recipes."""
