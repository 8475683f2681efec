"""UniTable in miniature: table recognition from pixels as language modelling (structure, cell
boxes, cell content), with a self-supervised visual encoder (dVAE codes + masked modelling)."""
