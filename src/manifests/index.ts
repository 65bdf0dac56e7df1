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
  normalizeRepository,
  parseReference,
  ReferenceError,
  repositoryProblem,
  tagProblem,
} from './reference.js';
