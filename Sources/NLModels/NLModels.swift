@_exported import NLLayers
