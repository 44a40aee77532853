"""What the notebooks study with the core library, one concept per module (see docs/ARCHITECTURE.md):

    dataset_statistics    what a VOC-layout split holds (notebook 00)
    factorization_study   CMF without a trained network: features and sweeps (notebook 01)
    trained_model         the model an analysis works on: a checkpoint, the published model, or a short run
    label_efficiency      four settings, one budget, several pixel-label fractions (notebook 03)
    stage_walk            one image through every stage: CAM, view masks, PAMR, pseudo label, codes, prediction, CRF (02)
    factors               codes and dictionaries of a trained model, per view and iteration, diagnostics (notebook 04)
    cvlr_ladder           the ablation ladder: what earns SLRNet its gain (notebooks 02, 04)
    supervision_gap       weak vs. no-CVLR vs. full supervision, one budget (notebook 02)
    side_by_side          several trainings at once on a CPU
    evaluation_report     four test-time settings, per-class IoU, median and worst images with their failure mode (notebook 05)
"""
