export {
  type Change,
  findImages,
  type ImageKind,
  type ImageRef,
  NotReferencedError,
  type SetImageOptions,
  type SetImageResult,
  SharedAnchorError,
  setImage,
  YamlSyntaxError,
} from './images.js';
export {
  digestProblem,
  formatReference,
  type ImageReference,
  InvalidReferenceError,
  normalizeRepository,
  parseReference,
  repositoryProblem,
  tagProblem,
} from './reference.js';
