@_exported import NLVideo
@_exported import NLTensor
