"""slrnet: a teaching and analysis suite for SLRNet (Pan et al., IJCV 2022).

Self-supervised Low-Rank Network for single-stage weakly and semi-supervised semantic segmentation.
The core is the method and its machinery; ``slrnet.analysis`` and ``slrnet.viz`` serve the notebooks:

    slrnet.cmf          collective matrix factorisation solvers (CVLR, NMF, SVD)
    slrnet.data         VOC-layout datasets, transforms, the embedded "shapes" and "photos" datasets, converters
    slrnet.models       backbones, modules (ASPP, GCI, SG, PAMR, CVLR), the SLRNet model, its loader
    slrnet.losses       class scores, pseudo labels, balanced CE, cross-view consistency
    slrnet.config       YAML configs with the authors' keys; slrnet.profiles: smoke / quick / full
    slrnet.train        the trainer (CPU, one GPU, torchrun/DDP)
    slrnet.infer        TestConfig and Predictor: multi-scale + flip inference, class filtering, CRF
    slrnet.metrics      confusion matrix, mIoU
    slrnet.analysis     what the notebooks study: factors, label efficiency, evaluation report, statistics
    slrnet.viz          figures (each function takes ``ax=None`` / ``axes=None`` and returns a Figure)
    slrnet.suite        the papermill notebook runner

See README.md, docs/METHOD.md and docs/ARCHITECTURE.md.
"""

__version__ = "0.1.0"
