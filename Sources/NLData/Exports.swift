@_exported import NLTensor
@_exported import NLVideo
