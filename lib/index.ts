export { FaceError, FaceTypeError, FaceRangeError } from './errors';
export type { FaceErrorCode } from './errors';
export { loadModel, devices, Model } from './engine';
export type { LoadModelOptions, Tensor, ValueInfo, DeviceStatus, DeviceName } from './engine';
export { OnnxGraphBuilder } from './onnx/builder';
export { buildRetinaFaceMnet025, retinaFaceKeys } from './graphs/retinaface';
export { buildFaceNetMobileNetV1, faceNetKeys } from './graphs/facenet';
