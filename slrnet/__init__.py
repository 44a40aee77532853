"""slrnet: a teaching and analysis suite for SLRNet (Pan et al., IJCV 2022).

Self-supervised Low-Rank Network for single-stage weakly and semi-supervised semantic
segmentation. The library is small and flat; each module is one concept:

    slrnet.cmf          collective matrix factorisation solvers (CVLR, NMF, SVD)
    slrnet.data         VOC-layout datasets, transforms, the synthetic "shapes" dataset
    slrnet.models       backbones, modules (ASPP, GCI, SG, PAMR, CVLR) and the SLRNet model
    slrnet.losses       class scores, pseudo labels, balanced CE, cross-view consistency
    slrnet.train        the trainer (single GPU, CPU, torchrun/DDP)
    slrnet.infer        multi-scale + flip inference, class filtering
    slrnet.crf          dense CRF post-processing
    slrnet.metrics      confusion matrix, mIoU
    slrnet.viz          figures (each function takes ``ax=None`` and returns a Figure)
    slrnet.suite        the papermill notebook runner

See README.md and docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
