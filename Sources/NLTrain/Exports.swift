@_exported import NLModels
@_exported import NLData
