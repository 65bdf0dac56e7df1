# The gitops-bot image: what ci-templates/promote.yml runs (its bot_image input). The
# bundle (npm run bundle: dist/gitops-bot.mjs and gitops-bot.data, no node_modules) on a small Node
# base, run as the base's unprivileged `node` user. Built by this project's own pipeline
# with ci-templates/build.yml (job build-bot-image, after the bundle job).
ARG NODE_IMAGE=node:20-alpine
FROM ${NODE_IMAGE}
# git: for `gitops-bot sandbox` (it serves repositories through `git http-backend`). promote
# and serve need none: they speak git's push protocol themselves (src/gitlab/git-push.ts).
RUN command -v git >/dev/null 2>&1 || apk add --no-cache git
COPY --chmod=755 dist/gitops-bot.mjs /usr/local/bin/gitops-bot
COPY dist/gitops-bot.data /usr/local/bin/gitops-bot.data
USER node
WORKDIR /home/node
ENTRYPOINT ["gitops-bot"]
CMD ["--help"]
