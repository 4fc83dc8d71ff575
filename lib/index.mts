// ES module entry: the same objects as the CommonJS build, so `import` and `require` agree.
import facesight from './index.js';
export type {
  FaceErrorCode, LoadModelOptions, Tensor, ValueInfo, DeviceStatus, DeviceName, Precision, TorchTensor, ModelDescriptor, ModelRole, ModelSpec, WeightsLocation,
  FaceEngineOptions, DetectionOptions, DetectedFace, EmbeddedFace, RecognizedFace, Verification, FaceMatcher, EngineModels, Alignment, Point, ResolvedDetection,
  ImageInput, RawFrame, Frame, DecodeOptions, Match, MatchOptions, EnrolmentReport, EnrolmentProgress, FromDirectoryOptions, LoadOptions, FaceDatabaseOptions,
  AnnotatedFace, AnnotateOptions, AnnotateResult,
} from './index.js';

export const {
  FaceError, FaceTypeError, FaceRangeError, loadModel, devices, Model, OnnxGraphBuilder,
  buildRetinaFaceMnet025, retinaFaceKeys, buildFaceNetMobileNetV1, faceNetKeys,
  readTorchCheckpoint, convertRetinaFaceMnet025, convertFaceNetMobileNetV1, convertMobileFaceNet, convertModel, parseDescriptor,
  knownModels, resolveModelSpec, locateWeights, loadDescriptorFile, convertFaceApiRecognition, convertFaceApiLandmarks68, convertFaceApiSsd, loadFaceApiSsdAnchors, FaceEngine, FaceDatabase, annotateImage, decodeImage, decodeImages,
} = facesight;
export default facesight;
