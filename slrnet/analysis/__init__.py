"""What the notebooks study with the core library, one concept per module (see docs/ARCHITECTURE.md):

    dataset_statistics    what a VOC-layout split holds (notebook 00)
    factorization_study   CMF without a trained network: features and sweeps (notebook 01)
    trained_model         the model an analysis works on: a checkpoint, the published model, or a short run
    label_efficiency      four settings, one budget, several pixel-label fractions (notebook 03)
    factors               codes and dictionaries of a trained model, per view and iteration (notebook 04)
    evaluation_report     four test-time settings, per-class IoU, median and worst images with their failure mode (notebook 05)
"""
