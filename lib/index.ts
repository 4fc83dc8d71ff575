export { FaceError, FaceTypeError, FaceRangeError } from './errors';
export type { FaceErrorCode } from './errors';
export { loadModel, devices, Model } from './engine';
export type { LoadModelOptions, Tensor, ValueInfo, DeviceStatus, DeviceName, Precision } from './engine';
export { OnnxGraphBuilder } from './onnx/builder';
export { buildRetinaFaceMnet025, retinaFaceKeys } from './graphs/retinaface';
export { buildFaceNetMobileNetV1, faceNetKeys } from './graphs/facenet';
export { readTorchCheckpoint } from './convert/torch-checkpoint';
export type { TorchTensor } from './convert/torch-checkpoint';
export { convertRetinaFaceMnet025 } from './convert/retinaface';
export { convertFaceNetMobileNetV1 } from './convert/facenet';
export { convertModel } from './convert';
export { parseDescriptor } from './models/descriptor';
export type { ModelDescriptor, ModelRole } from './models/descriptor';
export { knownModels, resolveModelSpec, locateWeights, loadDescriptorFile } from './models/registry';
export type { ModelSpec, WeightsLocation } from './models/registry';
export { convertMobileFaceNet } from './convert/mobilefacenet';
export { FaceEngine } from './pipeline/face-engine';
export type {
  FaceEngineOptions, DetectionOptions, DetectedFace, EmbeddedFace, RecognizedFace, Verification, FaceMatcher, EngineModels, Alignment, Point, ResolvedDetection,
} from './pipeline/face-engine';
export { FaceDatabase } from './pipeline/database';
export { annotateImage } from './pipeline/annotate';
export type { AnnotatedFace, AnnotateOptions, AnnotateResult } from './pipeline/annotate';
export type { Match, MatchOptions, EnrolmentReport, EnrolmentProgress, FromDirectoryOptions, LoadOptions, FaceDatabaseOptions } from './pipeline/database';
export { decodeImage, decodeImages } from './pipeline/image';
export type { ImageInput, RawFrame, Frame, DecodeOptions } from './pipeline/image';
export { convertFaceApiRecognition, convertFaceApiLandmarks68, convertFaceApiSsd, loadFaceApiSsdAnchors } from './convert/faceapi';
